#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The gateway's OIDC routes against fake Flow and Token services: what reaches core, and what
//! the browser or relying party sees.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, Method, Request, StatusCode, header};
use oxidex_api::{CoreChannel, GatewaySettings, Metrics};
use oxidex_proto::oxidex::v1 as pb;
use pb::flow_server::{Flow, FlowServer};
use pb::flow_step::Step;
use pb::token_server::{Token, TokenServer};
use tonic::{Code, Response, Status};
use tower::ServiceExt as _;

/// A call core received.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "a test recorder; size does not matter")]
enum Call {
    Authorize(pb::AuthorizeRequest),
    SelectConnector(pb::SelectConnectorRequest),
    PasswordLogin(pb::PasswordLoginRequest),
    Callback(pb::CallbackRequest),
    GetApproval(pb::ApprovalRequest),
    Approve(pb::ApproveRequest),
    VerifyUserCode(pb::VerifyUserCodeRequest),
    DeviceCallback(pb::DeviceCallbackRequest),
    Token(pb::TokenRequest),
    DeviceAuthorization(pb::DeviceAuthorizationRequest),
    Userinfo(pb::UserinfoRequest),
    Introspect(pb::IntrospectRequest),
    Revoke(pb::RevokeRequest),
}

/// The fake core's log and canned answers (`Err` answers that gRPC code).
#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    step: Mutex<Option<Result<pb::FlowStep, Code>>>,
    token: Mutex<Option<pb::TokenResult>>,
    device: Mutex<Option<pb::DeviceAuthorizationResult>>,
    userinfo: Mutex<Option<pb::UserinfoResult>>,
    introspect: Mutex<Option<pb::IntrospectResult>>,
    revoke: Mutex<Option<pb::RevokeResult>>,
    token_failure: Mutex<Option<Code>>,
}

impl Shared {
    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    fn step(&self) -> Result<Response<pb::FlowStep>, Status> {
        match self.step.lock().unwrap().clone() {
            Some(Ok(step)) => Ok(Response::new(step)),
            Some(Err(code)) => Err(Status::new(code, "secret internal detail 10.1.2.3")),
            None => Err(Status::unimplemented("no canned step")),
        }
    }

    fn answer<T: Clone>(&self, slot: &Mutex<Option<T>>) -> Result<Response<T>, Status> {
        if let Some(code) = *self.token_failure.lock().unwrap() {
            return Err(Status::new(code, "secret internal detail 10.1.2.3"));
        }
        slot.lock()
            .unwrap()
            .clone()
            .map(Response::new)
            .ok_or_else(|| Status::unimplemented("no canned answer"))
    }
}

#[derive(Clone)]
struct FakeFlow(Arc<Shared>);

#[tonic::async_trait]
impl Flow for FakeFlow {
    async fn authorize(
        &self,
        r: tonic::Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::Authorize(r.into_inner()));
        self.0.step()
    }
    async fn select_connector(
        &self,
        r: tonic::Request<pb::SelectConnectorRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::SelectConnector(r.into_inner()));
        self.0.step()
    }
    async fn password_login(
        &self,
        r: tonic::Request<pb::PasswordLoginRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::PasswordLogin(r.into_inner()));
        self.0.step()
    }
    async fn callback(
        &self,
        r: tonic::Request<pb::CallbackRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::Callback(r.into_inner()));
        self.0.step()
    }
    async fn get_approval(
        &self,
        r: tonic::Request<pb::ApprovalRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::GetApproval(r.into_inner()));
        self.0.step()
    }
    async fn approve(&self, r: tonic::Request<pb::ApproveRequest>) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::Approve(r.into_inner()));
        self.0.step()
    }
    async fn verify_user_code(
        &self,
        r: tonic::Request<pb::VerifyUserCodeRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::VerifyUserCode(r.into_inner()));
        self.0.step()
    }
    async fn device_callback(
        &self,
        r: tonic::Request<pb::DeviceCallbackRequest>,
    ) -> Result<Response<pb::FlowStep>, Status> {
        self.0.record(Call::DeviceCallback(r.into_inner()));
        self.0.step()
    }
}

#[derive(Clone)]
struct FakeToken(Arc<Shared>);

#[tonic::async_trait]
impl Token for FakeToken {
    async fn token(&self, r: tonic::Request<pb::TokenRequest>) -> Result<Response<pb::TokenResult>, Status> {
        self.0.record(Call::Token(r.into_inner()));
        self.0.answer(&self.0.token)
    }
    async fn device_authorization(
        &self,
        r: tonic::Request<pb::DeviceAuthorizationRequest>,
    ) -> Result<Response<pb::DeviceAuthorizationResult>, Status> {
        self.0.record(Call::DeviceAuthorization(r.into_inner()));
        self.0.answer(&self.0.device)
    }
    async fn userinfo(
        &self,
        r: tonic::Request<pb::UserinfoRequest>,
    ) -> Result<Response<pb::UserinfoResult>, Status> {
        self.0.record(Call::Userinfo(r.into_inner()));
        self.0.answer(&self.0.userinfo)
    }
    async fn introspect(
        &self,
        r: tonic::Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResult>, Status> {
        self.0.record(Call::Introspect(r.into_inner()));
        self.0.answer(&self.0.introspect)
    }
    async fn revoke(
        &self,
        r: tonic::Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResult>, Status> {
        self.0.record(Call::Revoke(r.into_inner()));
        self.0.answer(&self.0.revoke)
    }
}

struct Gateway {
    router: axum::Router,
    core: Arc<Shared>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: impl http::header::AsHeaderName) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The value of the browser cookie this answer sets, if it sets one.
    fn browser_cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("oxidex_browser="))
            .map(|v| v.split(';').next().unwrap().to_owned())
    }
}

fn settings(secure_cookies: bool) -> GatewaySettings {
    GatewaySettings {
        issuer_path: "/dex".to_owned(),
        allowed_origins: vec!["https://app.example".to_owned()],
        secure_cookies,
        ..Default::default()
    }
}

fn gateway_with(settings: GatewaySettings) -> Gateway {
    let core = Arc::new(Shared::default());
    let routes = tonic::service::Routes::new(FlowServer::new(FakeFlow(core.clone())))
        .add_service(TokenServer::new(FakeToken(core.clone())))
        .prepare();
    let metrics = Metrics::new("test", &settings.issuer_path).unwrap();
    let router = oxidex_api::web_router(CoreChannel::in_process(routes), &settings, metrics);
    Gateway { router, core }
}

fn gateway() -> Gateway {
    gateway_with(settings(false))
}

impl Gateway {
    fn set_step(&self, step: Step) {
        *self.core.step.lock().unwrap() = Some(Ok(pb::FlowStep { step: Some(step) }));
    }

    fn calls(&self) -> Vec<Call> {
        self.core.calls.lock().unwrap().clone()
    }

    fn last_call(&self) -> Call {
        self.calls().pop().expect("core was not called")
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, body: &str) -> Answer {
        self.send(form(uri, body).body(Body::from(body.to_owned())).unwrap()).await
    }
}

fn form(uri: &str, _body: &str) -> http::request::Builder {
    Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
}

fn redirect(url: &str) -> Step {
    Step::Redirect(pb::Redirect { url: url.to_owned() })
}

fn client(name: &str) -> Option<pb::ClientInfo> {
    Some(pb::ClientInfo { id: "app".to_owned(), name: name.to_owned(), logo_url: String::new() })
}

fn assert_page_headers(a: &Answer) {
    assert_eq!(a.header(header::X_FRAME_OPTIONS), "DENY");
    let csp = a.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(a.header(header::REFERRER_POLICY), "no-referrer");
    assert_eq!(a.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(a.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "no CORS on pages");
}

fn assert_html(a: &Answer) {
    assert!(a.header(header::CONTENT_TYPE).starts_with("text/html"), "{:?}", a.headers);
    assert!(a.body.starts_with("<!DOCTYPE html>"), "{}", a.body);
    assert_page_headers(a);
}

// ---------------------------------------------------------------------------------------------
// The browser flow
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn authorize_parameters_and_browser_secret_reach_core() {
    let g = gateway();
    g.set_step(redirect("https://rp.example/cb?code=abc&state=s"));
    let a = g
        .get(
            "/dex/auth?client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb&response_type=code\
&scope=openid+email&state=s%26x&nonce=n&code_challenge=cc&code_challenge_method=S256&connector_id=ldap\
&prompt=login&max_age=60&id_token_hint=h&login_hint=l&ui_locales=de&approval_prompt=force&request=r\
&request_uri=ru&response_mode=query&unknown=ignored&client_id=second",
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header(header::LOCATION), "https://rp.example/cb?code=abc&state=s");
    assert_page_headers(&a);
    let cookie = a.browser_cookie().expect("the browser cookie is set");
    let Call::Authorize(r) = g.last_call() else { panic!("not Authorize") };
    assert_eq!(
        r,
        pb::AuthorizeRequest {
            client_id: "app".into(),
            redirect_uri: "https://rp.example/cb".into(),
            response_type: "code".into(),
            scope: "openid email".into(),
            state: "s&x".into(),
            nonce: "n".into(),
            code_challenge: "cc".into(),
            code_challenge_method: "S256".into(),
            connector_id: "ldap".into(),
            prompt: "login".into(),
            max_age: "60".into(),
            id_token_hint: "h".into(),
            login_hint: "l".into(),
            ui_locales: "de".into(),
            approval_prompt: "force".into(),
            request: "r".into(),
            request_uri: "ru".into(),
            response_mode: "query".into(),
            browser_secret: cookie.clone(),
        }
    );
    assert_eq!(cookie.len(), 43);
}

#[tokio::test]
async fn authorize_accepts_post_forms() {
    let g = gateway();
    g.set_step(redirect("/dex/auth/local?req=1"));
    let a = g.post_form("/dex/auth?state=q", "client_id=app&scope=openid&state=body").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let Call::Authorize(r) = g.last_call() else { panic!() };
    assert_eq!((r.client_id.as_str(), r.scope.as_str(), r.state.as_str()), ("app", "openid", "body"));
}

#[tokio::test]
async fn browser_cookie_is_set_once_then_reused() {
    let g = gateway();
    g.set_step(redirect("https://rp.example/cb"));
    let first = g.get("/dex/auth?client_id=app").await;
    let set = first.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    assert!(set.contains("Path=/dex/"), "{set}");
    assert!(!set.contains("Secure"), "{set}");
    let cookie = first.browser_cookie().unwrap();

    let again = g
        .send(
            Request::get("/dex/auth/local?req=r1")
                .header(header::COOKIE, format!("other=1; oxidex_browser={cookie}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(again.headers.get(header::SET_COOKIE).is_none(), "an existing cookie is not set again");
    let Call::SelectConnector(r) = g.last_call() else { panic!() };
    assert_eq!(r.browser_secret, cookie);
    assert_eq!((r.request_id.as_str(), r.connector_id.as_str()), ("r1", "local"));

    // A new browser gets a different secret; a forged value is replaced.
    let other = g
        .send(
            Request::get("/dex/approval?req=r1&hmac=h")
                .header(header::COOKIE, "oxidex_browser=attacker")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let replaced = other.browser_cookie().unwrap();
    assert_ne!(replaced, cookie);
    let Call::GetApproval(r) = g.last_call() else { panic!() };
    assert_eq!(r.browser_secret, replaced);
}

#[tokio::test]
async fn secure_cookies_for_https_issuers() {
    let g = gateway_with(settings(true));
    g.set_step(redirect("https://rp.example/cb"));
    let a = g.get("/dex/auth").await;
    let set = a.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");

    let root = gateway_with(GatewaySettings { secure_cookies: true, ..Default::default() });
    root.set_step(redirect("https://rp.example/cb"));
    let a = root.get("/auth").await;
    let set = a.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.contains("Path=/;"), "{set}");
}

#[tokio::test]
async fn every_step_renders_with_security_headers() {
    let g = gateway();
    let steps = [
        Step::Error(pb::ErrorPage {
            title: "Bad client".into(),
            message: "Unknown client.".into(),
            http_status: 400,
            code: String::new(),
        }),
        Step::Chooser(pb::ConnectorChooser {
            request_id: "r1".into(),
            connectors: vec![pb::ConnectorInfo {
                id: "ldap".into(),
                r#type: "ldap".into(),
                name: "LDAP".into(),
            }],
            client: client("App"),
        }),
        Step::PasswordForm(pb::PasswordForm {
            request_id: "r1".into(),
            connector_id: "local".into(),
            username_prompt: "Email Address".into(),
            client: client("App"),
            ..Default::default()
        }),
        Step::Approval(pb::Approval {
            request_id: "r1".into(),
            hmac: "mac".into(),
            client: client("App"),
            scopes: vec![pb::ScopeInfo { scope: "email".into(), description: "View your email".into() }],
            username: "jane".into(),
            email: "jane@example.com".into(),
            redirect_origin: "https://rp.example".into(),
        }),
        Step::Oob(pb::OobCode { code: "oobcode".into() }),
        Step::DeviceSuccess(pb::DeviceSuccess { client: client("TV") }),
        Step::DeviceEntry(pb::DeviceEntry {
            user_code: "ABCD".into(),
            invalid: true,
            retry_after_seconds: 0,
        }),
    ];
    for step in steps {
        g.set_step(step.clone());
        let a = g.get("/dex/auth?client_id=app").await;
        assert_html(&a);
        match step {
            Step::Error(_) => {
                assert_eq!(a.status, StatusCode::BAD_REQUEST);
                assert!(a.body.contains("Unknown client.") && a.body.contains("Bad client"));
            }
            Step::Chooser(_) => {
                assert_eq!(a.status, StatusCode::OK);
                assert!(a.body.contains("href=\"/dex/auth/ldap?req=r1\""), "{}", a.body);
            }
            Step::PasswordForm(_) => {
                assert_eq!(a.status, StatusCode::OK);
                assert!(a.body.contains("action=\"/dex/auth/local/login\""), "{}", a.body);
                assert!(a.body.contains("<input type=\"hidden\" name=\"req\" value=\"r1\">"), "{}", a.body);
                assert!(a.body.contains("<label for=\"login\">Email Address</label>"), "{}", a.body);
                assert!(a.body.contains("name=\"password\" type=\"password\""), "{}", a.body);
                assert!(!a.body.contains("Invalid username"));
            }
            Step::Approval(_) => {
                assert!(a.body.contains("action=\"/dex/approval\""), "{}", a.body);
                assert!(a.body.contains("name=\"hmac\" value=\"mac\""), "{}", a.body);
                assert!(a.body.contains("name=\"approval\" value=\"approve\""), "{}", a.body);
                assert!(a.body.contains("View your email") && a.body.contains("jane@example.com"));
            }
            Step::Oob(_) => assert!(a.body.contains("value=\"oobcode\"")),
            Step::DeviceSuccess(_) => assert!(a.body.contains("TV")),
            Step::DeviceEntry(_) => {
                assert_eq!(a.status, StatusCode::BAD_REQUEST);
                assert!(a.body.contains("action=\"/dex/device/auth/verify_code\""), "{}", a.body);
                assert!(a.body.contains("value=\"ABCD\""));
                assert!(a.body.contains("Invalid or expired code"));
            }
            _ => unreachable!(),
        }
    }
    // The pages the gateway renders on its own.
    let device = g.get("/dex/device?user_code=WXYZ-BCDF").await;
    assert_eq!(device.status, StatusCode::OK);
    assert_html(&device);
    assert!(device.body.contains("value=\"WXYZ-BCDF\""));
    let malformed = g.get("/dex/auth?client_id=%zz").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_html(&malformed);
}

/// The `href` of the first `<link rel="stylesheet">` whose name starts with `stem`.
fn stylesheet(body: &str, stem: &str) -> String {
    body.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with(&format!("/dex/static/{stem}-")) && h.ends_with(".css"))
        .unwrap_or_else(|| panic!("no {stem} stylesheet in {body}"))
        .to_owned()
}

#[tokio::test]
async fn pages_speak_the_language_of_ui_locales_then_accept_language_then_the_default() {
    let g = gateway();
    g.set_step(Step::Chooser(pb::ConnectorChooser {
        request_id: "r1".into(),
        connectors: vec![pb::ConnectorInfo {
            id: "local".into(),
            r#type: "local".into(),
            name: "Email".into(),
        }],
        client: client("App"),
    }));
    let a = g.get("/dex/auth?client_id=app&ui_locales=fr%20de-AT").await;
    assert!(a.body.contains("<html lang=\"de\""), "{}", a.body);
    assert!(a.body.contains("Mit Email anmelden"), "{}", a.body);
    let set = a
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("oxidex_locale="))
        .expect("ui_locales is remembered for the next pages");
    assert!(set.starts_with("oxidex_locale=de;") && set.contains("HttpOnly"), "{set}");

    // The next page of the flow has no ui_locales: the cookie keeps German.
    g.set_step(Step::PasswordForm(pb::PasswordForm {
        request_id: "r1".into(),
        connector_id: "local".into(),
        username_prompt: "Email Address".into(),
        ..Default::default()
    }));
    let req = Request::get("/dex/auth/local/login?req=r1")
        .header(header::COOKIE, "oxidex_locale=de")
        .header(header::ACCEPT_LANGUAGE, "en")
        .body(Body::empty())
        .unwrap();
    let a = g.send(req).await;
    assert!(a.body.contains("<label for=\"login\">E-Mail-Adresse</label>"), "{}", a.body);
    assert!(a.body.contains("<label for=\"password\">Passwort</label>"), "{}", a.body);

    // Accept-Language alone.
    let req = Request::get("/dex/auth/local/login?req=r1")
        .header(header::ACCEPT_LANGUAGE, "fr-CH, de;q=0.8, en;q=0.5")
        .body(Body::empty())
        .unwrap();
    assert!(g.send(req).await.body.contains("<html lang=\"de\""));
    // A new /auth without ui_locales forgets the earlier choice.
    let req = Request::get("/dex/auth?client_id=app")
        .header(header::COOKIE, "oxidex_locale=de")
        .body(Body::empty())
        .unwrap();
    let a = g.send(req).await;
    assert!(a.body.contains("<html lang=\"en\""), "{}", a.body);
    let cleared = a.headers.get_all(header::SET_COOKIE).iter().any(|v| {
        let v = v.to_str().unwrap();
        v.starts_with("oxidex_locale=;") && v.contains("Max-Age=0")
    });
    assert!(cleared, "{:?}", a.headers);

    // The configured default.
    let mut s = settings(false);
    s.frontend.default_locale = "de".into();
    let g = gateway_with(s);
    g.set_step(Step::Error(pb::ErrorPage {
        title: "Login session expired".into(),
        message: "This login request is unknown.".into(),
        http_status: 400,
        code: "stale_request".into(),
    }));
    let a = g.get("/dex/approval?req=r&hmac=h").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("Anmeldesitzung abgelaufen"), "{}", a.body);
    // English for a code the catalogs do not know: core's own text.
    g.set_step(Step::Error(pb::ErrorPage {
        title: "Brand new".into(),
        message: "Something new happened.".into(),
        http_status: 403,
        code: "brand_new".into(),
    }));
    let a = g.get("/dex/approval?req=r&hmac=h").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("Brand new") && a.body.contains("Something new happened."), "{}", a.body);
}

#[tokio::test]
async fn pages_embed_the_step_and_link_hashed_immutable_compressed_assets() {
    let mut s = settings(false);
    s.frontend.theme = "dark".into();
    s.frontend.issuer = "Example Corp".into();
    s.frontend.colors.insert("primary".into(), "#aa3300".into());
    s.frontend.custom_css = Some(".ox-brand { letter-spacing: 1px; }".into());
    let g = gateway_with(s);
    g.set_step(Step::Approval(pb::Approval {
        request_id: "r1".into(),
        hmac: "mac".into(),
        client: Some(pb::ClientInfo {
            id: "app".into(),
            name: "App".into(),
            logo_url: "https://cdn.example.com/app/logo.png".into(),
        }),
        scopes: vec![pb::ScopeInfo { scope: "email".into(), description: String::new() }],
        username: "jane".into(),
        email: String::new(),
        redirect_origin: "https://rp.example".into(),
    }));
    let a = g.get("/dex/approval?req=r1&hmac=mac").await;
    assert_html(&a);
    assert!(a.body.contains("data-theme=\"dark\""), "{}", a.body);
    assert!(a.body.contains("Example Corp"), "{}", a.body);
    let csp = a.header(header::CONTENT_SECURITY_POLICY);
    for part in [
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' https://cdn.example.com;",
        "form-action 'self' https://rp.example;",
        "connect-src 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "CSP without {part}: {csp}");
    }
    // The step, as JSON data for the app.
    let json = a
        .body
        .split("<script type=\"application/json\" id=\"step\">")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .expect("no embedded step");
    let embedded: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(embedded["step"]["step"]["approval"]["hmac"], "mac", "{embedded}");
    assert_eq!(embedded["ctx"]["base"], "/dex", "{embedded}");
    assert_eq!(embedded["ctx"]["locale"], "en", "{embedded}");

    // The stylesheets: hashed names, immutable, brotli or gzip by Accept-Encoding.
    let app_css = stylesheet(&a.body, "app");
    let get = |uri: &str, encoding: &str| {
        let mut r = Request::get(uri);
        if !encoding.is_empty() {
            r = r.header(header::ACCEPT_ENCODING, encoding);
        }
        r.body(Body::empty()).unwrap()
    };
    let plain = g.send(get(&app_css, "")).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.header(header::CONTENT_TYPE).starts_with("text/css"));
    assert_eq!(plain.header(header::CACHE_CONTROL), "public, max-age=31536000, immutable");
    assert_eq!(plain.header(header::VARY), "Accept-Encoding");
    assert!(plain.body.contains("--ox-primary"), "{}", plain.body);
    let response = g.router.clone().oneshot(get(&app_css, "gzip, deflate, br")).await.unwrap();
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "br");
    let br = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert!(br.len() < plain.body.len() / 2, "brotli {} of {} bytes", br.len(), plain.body.len());
    let response = g.router.clone().oneshot(get(&app_css, "gzip;q=1, br;q=0")).await.unwrap();
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");

    let theme = g.send(get(&stylesheet(&a.body, "theme"), "")).await;
    assert!(theme.body.contains("--ox-primary: #aa3300;"), "{}", theme.body);
    assert!(theme.body.contains(".ox-brand { letter-spacing: 1px; }"), "{}", theme.body);
    let missing = g.send(get("/dex/static/app-0000000000000000.css", "")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_escape_every_value() {
    let g = gateway();
    let evil = "<script>alert(\"x\")</script>";
    g.set_step(Step::Approval(pb::Approval {
        request_id: "r\"><script>".into(),
        hmac: "h".into(),
        client: client(evil),
        scopes: vec![pb::ScopeInfo { scope: "s".into(), description: evil.into() }],
        username: evil.into(),
        email: String::new(),
        redirect_origin: "javascript:alert(1)".into(),
    }));
    let a = g.get("/dex/approval?req=r&hmac=h").await;
    assert!(!a.body.contains("<script>"), "{}", a.body);
    assert!(a.body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), "{}", a.body);

    g.set_step(Step::Chooser(pb::ConnectorChooser {
        request_id: "r&1".into(),
        connectors: vec![pb::ConnectorInfo { id: "a b/\"c".into(), r#type: "x".into(), name: evil.into() }],
        client: client(evil),
    }));
    let a = g.get("/dex/auth?client_id=app").await;
    assert!(!a.body.contains("<script>"), "{}", a.body);
    assert!(a.body.contains("href=\"/dex/auth/a%20b%2F%22c?req=r%261\""), "{}", a.body);

    let a = g.get("/dex/device?user_code=%22%3E%3Cscript%3E").await;
    assert!(!a.body.contains("<script>"), "{}", a.body);
    assert!(a.body.contains("value=\"&quot;&gt;&lt;script&gt;\""), "{}", a.body);
}

#[tokio::test]
async fn password_login_reaches_core_and_redirects_with_303() {
    let g = gateway();
    g.set_step(redirect("/dex/approval?req=r1&hmac=m"));
    let mut req = form("/dex/auth/local/login", "")
        .header(header::COOKIE, "oxidex_browser=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .body(Body::from("login=jane%40example.com&password=p%26ss+word&req=r1"))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40000))));
    let a = g.send(req).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "never 307 after a credentials POST");
    assert_eq!(a.header(header::LOCATION), "/dex/approval?req=r1&hmac=m");
    let Call::PasswordLogin(r) = g.last_call() else { panic!() };
    assert_eq!(
        r,
        pb::PasswordLoginRequest {
            request_id: "r1".into(),
            connector_id: "local".into(),
            username: "jane@example.com".into(),
            password: "p&ss word".into(),
            client_ip: "192.0.2.7".into(),
            browser_secret: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        }
    );

    // Without connection info the IP is empty.
    g.post_form("/dex/auth/local/login", "login=a&password=b&req=r1").await;
    let Call::PasswordLogin(r) = g.last_call() else { panic!() };
    assert_eq!(r.client_ip, "");

    // GET shows the form through SelectConnector (Dex's ?state= works too).
    g.set_step(Step::PasswordForm(pb::PasswordForm {
        request_id: "r1".into(),
        connector_id: "local".into(),
        ..Default::default()
    }));
    let a = g.get("/dex/auth/local/login?state=r1").await;
    assert_eq!(a.status, StatusCode::OK);
    let Call::SelectConnector(r) = g.last_call() else { panic!() };
    assert_eq!((r.request_id.as_str(), r.connector_id.as_str()), ("r1", "local"));

    // A body that is not a form is a 400 page, and core is not called.
    let before = g.calls().len();
    let a = g
        .send(
            Request::post("/dex/auth/local/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"login\":\"a\"}"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_html(&a);
    assert_eq!(g.calls().len(), before);
}

#[tokio::test]
async fn password_form_failures() {
    let g = gateway();
    g.set_step(Step::PasswordForm(pb::PasswordForm {
        request_id: "r1".into(),
        connector_id: "local".into(),
        username: "jane".into(),
        invalid: true,
        ..Default::default()
    }));
    let a = g.post_form("/dex/auth/local/login", "login=jane&password=wrong&req=r1").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_html(&a);
    assert!(a.body.contains("Invalid username or password"));
    assert!(a.body.contains("value=\"jane\""), "the username is prefilled");
    assert!(!a.body.contains("wrong"), "the password is never echoed");

    g.set_step(Step::PasswordForm(pb::PasswordForm {
        request_id: "r1".into(),
        connector_id: "local".into(),
        invalid: true,
        retry_after_seconds: 30,
        ..Default::default()
    }));
    let a = g.post_form("/dex/auth/local/login", "login=jane&password=wrong&req=r1").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header(header::RETRY_AFTER), "30");
    assert!(a.body.contains("try again in 30 s"), "{}", a.body);

    g.set_step(Step::DeviceEntry(pb::DeviceEntry {
        user_code: String::new(),
        invalid: true,
        retry_after_seconds: 9,
    }));
    let a = g.post_form("/dex/device/auth/verify_code", "user_code=X").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.body.contains("try again in 9 s"), "{}", a.body);
}

#[tokio::test]
async fn approval_and_connector_selection() {
    let g = gateway();
    g.set_step(redirect("https://rp.example/cb?code=c"));
    let a = g.post_form("/dex/approval", "req=r1&hmac=m%2B&approval=approve").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let Call::Approve(r) = g.last_call() else { panic!() };
    assert_eq!((r.request_id.as_str(), r.hmac.as_str(), r.approve), ("r1", "m+", true));
    assert_eq!(r.browser_secret, a.browser_cookie().unwrap());

    g.post_form("/dex/approval", "req=r1&hmac=m&approval=rejected").await;
    let Call::Approve(r) = g.last_call() else { panic!() };
    assert!(!r.approve);

    g.get("/dex/approval?req=r2&hmac=h2").await;
    let Call::GetApproval(r) = g.last_call() else { panic!() };
    assert_eq!((r.request_id.as_str(), r.hmac.as_str()), ("r2", "h2"));

    // /auth/{connector} with a full authorization request names the connector.
    g.get("/dex/auth/github?client_id=app&scope=openid").await;
    let Call::Authorize(r) = g.last_call() else { panic!() };
    assert_eq!((r.client_id.as_str(), r.connector_id.as_str()), ("app", "github"));
}

#[tokio::test]
async fn callbacks_pass_every_parameter() {
    let g = gateway();
    g.set_step(redirect("/dex/approval?req=r1&hmac=m"));
    let a = g.get("/dex/callback?code=up&state=r1&extra=%2F").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let Call::Callback(r) = g.last_call() else { panic!() };
    assert_eq!(r.connector_id, "");
    assert_eq!(r.params.len(), 3);
    assert_eq!(r.params["code"], "up");
    assert_eq!(r.params["extra"], "/");
    assert_eq!(r.browser_secret, a.browser_cookie().unwrap());

    g.post_form("/dex/callback/saml", "SAMLResponse=PHNhbWw%2B&RelayState=r1").await;
    let Call::Callback(r) = g.last_call() else { panic!() };
    assert_eq!(r.connector_id, "saml");
    assert_eq!(r.params["SAMLResponse"], "PHNhbWw+");
    assert_eq!(r.params["RelayState"], "r1");

    g.get("/dex/callback/authproxy?x=1").await;
    let Call::Callback(r) = g.last_call() else { panic!() };
    assert_eq!((r.connector_id.as_str(), r.params["x"].as_str()), ("authproxy", "1"));

    g.set_step(Step::DeviceSuccess(pb::DeviceSuccess { client: client("TV") }));
    let a = g.get("/dex/device/callback?code=c&state=s").await;
    assert_eq!(a.status, StatusCode::OK);
    let Call::DeviceCallback(r) = g.last_call() else { panic!() };
    assert_eq!((r.code.as_str(), r.state.as_str()), ("c", "s"));
    assert_eq!(r.browser_secret, a.browser_cookie().unwrap());
}

#[tokio::test]
async fn device_user_code_reaches_core() {
    let g = gateway();
    g.set_step(redirect("/dex/auth?client_id=tv"));
    let mut req = form("/dex/device/auth/verify_code", "").body(Body::from("user_code=WXYZ-BCDF")).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 1))));
    let a = g.send(req).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let Call::VerifyUserCode(r) = g.last_call() else { panic!() };
    assert_eq!(r.user_code, "WXYZ-BCDF");
    assert_eq!(r.client_ip, "2001:db8::1");
    assert_eq!(r.browser_secret, a.browser_cookie().unwrap());
}

#[tokio::test]
async fn core_failures_on_pages_are_html_without_details() {
    let g = gateway();
    *g.core.step.lock().unwrap() = Some(Err(Code::Unavailable));
    let a = g.get("/dex/auth?client_id=app").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_html(&a);
    assert!(!a.body.contains("10.1.2.3"), "{}", a.body);

    *g.core.step.lock().unwrap() = Some(Err(Code::Internal));
    let a = g.get("/dex/auth?client_id=app").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_html(&a);
    assert!(!a.body.contains("10.1.2.3"), "{}", a.body);

    // An empty step is core's bug, not the browser's: still an HTML page.
    *g.core.step.lock().unwrap() = Some(Ok(pb::FlowStep { step: None }));
    let a = g.get("/dex/auth?client_id=app").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_html(&a);
}

/// Failures outside a flow step are the themed login page in the browser's language, with the
/// error embedded as a step for the UI, never a bare English page; status and `Retry-After`
/// stay.
#[tokio::test]
async fn failures_outside_a_step_are_themed_and_translated() {
    let g = gateway();
    let german = |uri: &str| Request::get(uri).header(header::ACCEPT_LANGUAGE, "de-DE,de;q=0.9,en;q=0.5");

    *g.core.step.lock().unwrap() = Some(Err(Code::Unavailable));
    let a = g.send(german("/dex/auth?client_id=app").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers.get(header::RETRY_AFTER).map(|v| v.to_str().unwrap()), Some("5"));
    assert_page_headers(&a);
    assert!(a.body.contains("<html lang=\"de\""), "{}", a.body);
    assert!(a.body.contains("Vorübergehend nicht verfügbar"), "{}", a.body);
    assert!(a.body.contains("\"unavailable\""), "the error step is not embedded for the UI:\n{}", a.body);
    assert!(!stylesheet(&a.body, "app").is_empty(), "not the themed page:\n{}", a.body);
    assert!(!a.body.contains("10.1.2.3"), "{}", a.body);

    *g.core.step.lock().unwrap() = Some(Err(Code::Internal));
    let a = g.get("/dex/auth?client_id=app").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(a.body.contains("Internal error") && a.body.contains("Please try again later."), "{}", a.body);
    assert!(!a.body.contains("10.1.2.3"), "{}", a.body);

    // A request the gateway cannot parse: 400, translated title, the (safe) detail.
    let a = g.send(german("/dex/auth?client_id=%ZZ").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("Die Anfrage konnte nicht ausgeführt werden"), "{}", a.body);
    assert!(!stylesheet(&a.body, "app").is_empty(), "not the themed page:\n{}", a.body);
}

// ---------------------------------------------------------------------------------------------
// The token endpoints
// ---------------------------------------------------------------------------------------------

fn token_ok() -> pb::TokenResult {
    pb::TokenResult {
        result: Some(pb::token_result::Result::Token(pb::TokenResponse {
            access_token: "at".into(),
            token_type: "bearer".into(),
            expires_in: 0,
            refresh_token: String::new(),
            id_token: "idt".into(),
            issued_token_type: String::new(),
            scope: String::new(),
        })),
    }
}

fn oauth_error(error: &str, status: i32, www: &str, retry: i64) -> pb::OAuthError {
    pb::OAuthError {
        error: error.into(),
        description: String::new(),
        http_status: status,
        www_authenticate: www.into(),
        retry_after_seconds: retry,
    }
}

fn basic(id_secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(id_secret))
}

fn assert_no_store(a: &Answer) {
    assert_eq!(a.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(a.header(header::PRAGMA), "no-cache");
}

#[tokio::test]
async fn token_with_basic_auth_decodes_url_encoded_credentials() {
    let g = gateway();
    *g.core.token.lock().unwrap() = Some(token_ok());
    let mut req = form("/dex/token", "")
        .header(header::AUTHORIZATION, basic("my%3Aclient:s%40cr%2Bet%25+x%C3%A9"))
        .body(Body::from("grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Frp%2Fcb&scope="))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5))));
    let a = g.send(req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let Call::Token(r) = g.last_call() else { panic!() };
    assert_eq!(r.grant_type, "authorization_code");
    let client = r.client.unwrap();
    assert_eq!(client.client_id, "my:client");
    assert_eq!(client.client_secret, "s@cr+et% xé");
    assert_eq!(client.method, "client_secret_basic");
    assert_eq!(r.client_ip, "127.0.0.1");
    assert_eq!(r.params["code"], "abc");
    assert_eq!(r.params["redirect_uri"], "https://rp/cb");
    assert!(!r.params.contains_key("scope"), "empty parameters count as absent");

    // JSON shape: only non-empty fields, expires_in omitted when 0.
    assert!(a.header(header::CONTENT_TYPE).starts_with("application/json"));
    assert_no_store(&a);
    assert_eq!(
        a.json(),
        serde_json::json!({"access_token": "at", "token_type": "bearer", "id_token": "idt"})
    );

    // A client_id in the body that matches the Basic one is fine.
    g.send(
        form("/dex/token", "")
            .header(header::AUTHORIZATION, basic("app:secret"))
            .body(Body::from("grant_type=refresh_token&client_id=app&refresh_token=rt"))
            .unwrap(),
    )
    .await;
    let Call::Token(r) = g.last_call() else { panic!() };
    assert_eq!(r.client.unwrap().client_id, "app");
    assert!(!r.params.contains_key("client_id"));
    assert_eq!(r.params["refresh_token"], "rt");
}

#[tokio::test]
async fn token_client_authentication_methods() {
    let g = gateway();
    *g.core.token.lock().unwrap() = Some(pb::TokenResult {
        result: Some(pb::token_result::Result::Token(pb::TokenResponse {
            access_token: "at".into(),
            token_type: "bearer".into(),
            expires_in: 3600,
            refresh_token: "rt".into(),
            id_token: "idt".into(),
            issued_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
            scope: "openid".into(),
        })),
    });
    let a =
        g.post_form("/dex/token", "grant_type=client_credentials&client_id=app&client_secret=s%20s").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json(),
        serde_json::json!({
            "access_token": "at", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt",
            "id_token": "idt", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "scope": "openid"
        })
    );
    let Call::Token(r) = g.last_call() else { panic!() };
    let c = r.client.unwrap();
    assert_eq!(
        (c.client_id.as_str(), c.client_secret.as_str(), c.method.as_str()),
        ("app", "s s", "client_secret_post")
    );
    assert!(!r.params.contains_key("client_secret"));
    assert_eq!(r.params["grant_type"], "client_credentials");

    g.post_form("/dex/token", "grant_type=authorization_code&client_id=public&code=c").await;
    let Call::Token(r) = g.last_call() else { panic!() };
    let c = r.client.unwrap();
    assert_eq!((c.client_id.as_str(), c.client_secret.as_str(), c.method.as_str()), ("public", "", "none"));

    // Basic and client_secret_post at once.
    let before = g.calls().len();
    let a = g
        .send(
            form("/dex/token", "")
                .header(header::AUTHORIZATION, basic("app:secret"))
                .body(Body::from("grant_type=authorization_code&client_id=app&client_secret=secret"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"], "invalid_request");
    assert_no_store(&a);
    // A body client_id naming another client than Basic.
    let a = g
        .send(
            form("/dex/token", "")
                .header(header::AUTHORIZATION, basic("app:secret"))
                .body(Body::from("grant_type=authorization_code&client_id=other"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"], "invalid_request");
    // Malformed Basic credentials: 401 invalid_client with a Basic challenge.
    for bad in ["Basic !!!notbase64", &basic("no-colon"), &basic("app:%zz")] {
        let a = g
            .send(
                form("/dex/token", "")
                    .header(header::AUTHORIZATION, bad)
                    .body(Body::from("grant_type=authorization_code"))
                    .unwrap(),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(a.json()["error"], "invalid_client");
        assert!(a.header(header::WWW_AUTHENTICATE).starts_with("Basic"));
    }
    assert_eq!(g.calls().len(), before, "core is not called for malformed requests");
}

#[tokio::test]
async fn token_errors_map_to_oauth_json() {
    let g = gateway();
    *g.core.token.lock().unwrap() = Some(pb::TokenResult {
        result: Some(pb::token_result::Result::Error(oauth_error(
            "invalid_client",
            401,
            "Basic realm=\"oxidex\"",
            0,
        ))),
    });
    let a = g.post_form("/dex/token", "grant_type=authorization_code&code=c").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header(header::WWW_AUTHENTICATE), "Basic realm=\"oxidex\"");
    assert_eq!(a.json(), serde_json::json!({"error": "invalid_client"}));
    assert_no_store(&a);

    *g.core.token.lock().unwrap() = Some(pb::TokenResult {
        result: Some(pb::token_result::Result::Error(pb::OAuthError {
            error: "slow_down".into(),
            description: "poll slower".into(),
            http_status: 0,
            www_authenticate: String::new(),
            retry_after_seconds: 0,
        })),
    });
    let a =
        g.post_form("/dex/token", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "the default status is 400");
    assert_eq!(a.json(), serde_json::json!({"error": "slow_down", "error_description": "poll slower"}));
    assert!(a.headers.get(header::WWW_AUTHENTICATE).is_none());

    *g.core.token.lock().unwrap() = Some(pb::TokenResult {
        result: Some(pb::token_result::Result::Error(oauth_error("temporarily_unavailable", 429, "", 7))),
    });
    let a = g.post_form("/dex/token", "grant_type=password").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header(header::RETRY_AFTER), "7");

    // Transport-level failure of core: JSON, no internal detail.
    *g.core.token_failure.lock().unwrap() = Some(Code::Unavailable);
    let a = g.post_form("/dex/token", "grant_type=password").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    assert!(!a.body.contains("10.1.2.3"));
    assert_no_store(&a);
}

#[tokio::test]
async fn malformed_token_requests_are_400() {
    let g = gateway();
    *g.core.token.lock().unwrap() = Some(token_ok());
    let cases: [(&str, Option<&str>, &[u8]); 5] = [
        ("bad escape", Some("application/x-www-form-urlencoded"), b"grant_type=%zz"),
        ("not UTF-8", Some("application/x-www-form-urlencoded"), b"grant_type=\xff\xfe"),
        ("repeated", Some("application/x-www-form-urlencoded"), b"grant_type=a&code=1&code=2"),
        ("JSON", Some("application/json"), b"{\"grant_type\":\"password\"}"),
        ("no type", None, b"grant_type=password"),
    ];
    for (name, content_type, body) in cases {
        let mut b = Request::post("/dex/token");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let a = g.send(b.body(Body::from(body.to_vec())).unwrap()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(a.json()["error"], "invalid_request", "{name}");
        assert_no_store(&a);
    }
    assert!(g.calls().is_empty());
    for method in [Method::GET, Method::PUT] {
        let a = g
            .send(Request::builder().method(method.clone()).uri("/dex/token").body(Body::empty()).unwrap())
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method}");
        assert_eq!(a.json()["error"], "invalid_request");
    }
    // charset parameters on the content type are fine.
    let a = g
        .send(
            Request::post("/dex/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=UTF-8")
                .body(Body::from("grant_type=password&client_id=a"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn token_endpoints_answer_cors_for_allowed_origins_only() {
    let g = gateway();
    *g.core.token.lock().unwrap() = Some(token_ok());
    for path in
        ["/dex/token", "/dex/userinfo", "/dex/token/introspect", "/dex/token/revoke", "/dex/device/code"]
    {
        let pre = g
            .send(
                Request::builder()
                    .method(Method::OPTIONS)
                    .uri(path)
                    .header(header::ORIGIN, "https://app.example")
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(pre.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), "https://app.example", "{path}");
        let evil = g
            .send(
                Request::builder()
                    .method(Method::OPTIONS)
                    .uri(path)
                    .header(header::ORIGIN, "https://evil.example")
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert!(evil.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{path}");
    }
    let a = g
        .send(
            form("/dex/token", "")
                .header(header::ORIGIN, "https://app.example")
                .body(Body::from("grant_type=password&client_id=a"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), "https://app.example");
    // The browser pages never answer CORS.
    g.set_step(redirect("https://rp.example/cb"));
    let a = g
        .send(
            Request::get("/dex/auth?client_id=app")
                .header(header::ORIGIN, "https://app.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn userinfo_takes_the_token_from_header_or_form_only() {
    let g = gateway();
    *g.core.userinfo.lock().unwrap() = Some(pb::UserinfoResult {
        result: Some(pb::userinfo_result::Result::ClaimsJson("{\"sub\":\"u1\"}".into())),
    });

    // The query string is never a token source.
    let a = g.get("/dex/userinfo?access_token=leaked").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header(header::WWW_AUTHENTICATE), "Bearer");
    let a = g.post_form("/dex/userinfo?access_token=leaked", "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(g.calls().is_empty(), "core never sees a token from the query string");

    let a = g
        .send(
            Request::get("/dex/userinfo")
                .header(header::AUTHORIZATION, "bearer  tok.en ")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "{\"sub\":\"u1\"}");
    assert_eq!(a.header(header::CONTENT_TYPE), "application/json");
    assert_no_store(&a);
    let Call::Userinfo(r) = g.last_call() else { panic!() };
    assert_eq!(r.access_token, "tok.en");

    g.post_form("/dex/userinfo", "access_token=form-token").await;
    let Call::Userinfo(r) = g.last_call() else { panic!() };
    assert_eq!(r.access_token, "form-token");

    // Both at once.
    let a = g
        .send(
            form("/dex/userinfo", "")
                .header(header::AUTHORIZATION, "Bearer a")
                .body(Body::from("access_token=b"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // A rejected token.
    *g.core.userinfo.lock().unwrap() = Some(pb::UserinfoResult {
        result: Some(pb::userinfo_result::Result::Error(pb::OAuthError {
            error: "invalid_token".into(),
            description: "token expired".into(),
            http_status: 401,
            www_authenticate: String::new(),
            retry_after_seconds: 0,
        })),
    });
    let a = g
        .send(
            Request::get("/dex/userinfo")
                .header(header::AUTHORIZATION, "Bearer x")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header(header::WWW_AUTHENTICATE), "Bearer error=\"invalid_token\"");
    assert_eq!(a.json()["error"], "invalid_token");
    assert_no_store(&a);
}

#[tokio::test]
async fn introspect_revoke_and_device_code() {
    let g = gateway();
    *g.core.introspect.lock().unwrap() = Some(pb::IntrospectResult {
        result: Some(pb::introspect_result::Result::ResponseJson("{\"active\":false}".into())),
    });
    let a = g
        .send(
            form("/dex/token/introspect", "")
                .header(header::AUTHORIZATION, basic("rs:pw"))
                .body(Body::from("token=t1&token_type_hint=refresh_token"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "{\"active\":false}");
    assert_eq!(a.header(header::CONTENT_TYPE), "application/json");
    assert_no_store(&a);
    let Call::Introspect(r) = g.last_call() else { panic!() };
    assert_eq!((r.token.as_str(), r.token_type_hint.as_str()), ("t1", "refresh_token"));
    assert_eq!(r.client.unwrap().method, "client_secret_basic");

    *g.core.revoke.lock().unwrap() = Some(pb::RevokeResult { error: None });
    let a = g.post_form("/dex/token/revoke", "token=t2&client_id=app&client_secret=s").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "");
    let Call::Revoke(r) = g.last_call() else { panic!() };
    assert_eq!(r.token, "t2");
    assert_eq!(r.client.unwrap().method, "client_secret_post");

    *g.core.revoke.lock().unwrap() =
        Some(pb::RevokeResult { error: Some(oauth_error("unsupported_token_type", 400, "", 0)) });
    let a = g.post_form("/dex/token/revoke", "token=t2&client_id=app").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"], "unsupported_token_type");

    *g.core.device.lock().unwrap() = Some(pb::DeviceAuthorizationResult {
        result: Some(pb::device_authorization_result::Result::Response(pb::DeviceAuthorizationResponse {
            device_code: "dc".into(),
            user_code: "WXYZ-BCDF".into(),
            verification_uri: "https://id.example/dex/device".into(),
            verification_uri_complete: "https://id.example/dex/device?user_code=WXYZ-BCDF".into(),
            expires_in: 300,
            interval: 5,
        })),
    });
    let a = g
        .post_form(
            "/dex/device/code",
            "client_id=tv&scope=openid+profile&code_challenge=cc&code_challenge_method=S256",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_no_store(&a);
    assert_eq!(
        a.json(),
        serde_json::json!({
            "device_code": "dc", "user_code": "WXYZ-BCDF", "verification_uri": "https://id.example/dex/device",
            "verification_uri_complete": "https://id.example/dex/device?user_code=WXYZ-BCDF",
            "expires_in": 300, "interval": 5
        })
    );
    let Call::DeviceAuthorization(r) = g.last_call() else { panic!() };
    assert_eq!(r.scope, "openid profile");
    assert_eq!((r.code_challenge.as_str(), r.code_challenge_method.as_str()), ("cc", "S256"));
    assert_eq!(r.client.unwrap().method, "none");
}

// ---------------------------------------------------------------------------------------------
// The login UI's gRPC-web endpoint
// ---------------------------------------------------------------------------------------------

const BROWSER: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const GRPC_WEB: &str = "application/grpc-web+proto";

/// A gRPC-web answer: HTTP status, headers, data frames, and `grpc-status`/`grpc-message` from
/// the trailer frame or the headers.
struct WebAnswer {
    status: StatusCode,
    headers: HeaderMap,
    messages: Vec<Vec<u8>>,
    grpc_status: Option<i32>,
    grpc_message: String,
}

impl WebAnswer {
    fn step(&self) -> pb::FlowStep {
        assert_eq!(self.grpc_status, Some(0), "{} {:?}", self.grpc_message, self.headers);
        assert_eq!(self.messages.len(), 1);
        prost::Message::decode(self.messages[0].as_slice()).unwrap()
    }
}

fn grpc_web_frame(message: &impl prost::Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// A gRPC-web request of `method` (`oxidex.v1.Flow/PasswordLogin`...) with the browser cookie,
/// the issuer's origin and a client address, unless the test changes them.
fn grpc_web(method: &str) -> http::request::Builder {
    Request::post(format!("/dex/grpc-web/{method}"))
        .header(header::CONTENT_TYPE, GRPC_WEB)
        .header("x-grpc-web", "1")
        .header(header::ORIGIN, "https://id.example")
        .header(header::COOKIE, format!("theme=x; oxidex_browser={BROWSER}"))
}

/// `builder` with the header `name` replaced (`Builder::header` appends).
fn set(mut builder: http::request::Builder, name: header::HeaderName, value: &str) -> http::request::Builder {
    builder.headers_mut().unwrap().insert(name, value.parse().unwrap());
    builder
}

impl Gateway {
    async fn web(&self, builder: http::request::Builder, message: &impl prost::Message) -> WebAnswer {
        let mut req = builder.body(Body::from(grpc_web_frame(message))).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 4], 5000))));
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        let mut grpc_status = header("grpc-status").map(|s| s.parse().unwrap());
        let mut grpc_message = header("grpc-message").unwrap_or_default();
        let mut messages = Vec::new();
        let mut rest = &body[..];
        while rest.len() >= 5 {
            let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            let payload = &rest[5..5 + len];
            if rest[0] & 0x80 != 0 {
                for line in String::from_utf8_lossy(payload).split("\r\n") {
                    match line.split_once(':') {
                        Some(("grpc-status", v)) => grpc_status = Some(v.trim().parse().unwrap()),
                        Some(("grpc-message", v)) => grpc_message = v.trim().to_owned(),
                        _ => {}
                    }
                }
            } else {
                messages.push(payload.to_vec());
            }
            rest = &rest[5 + len..];
        }
        WebAnswer { status, headers, messages, grpc_status, grpc_message }
    }
}

fn web_settings() -> GatewaySettings {
    GatewaySettings { issuer: "https://id.example/dex".into(), ..settings(true) }
}

#[tokio::test]
async fn grpc_web_calls_are_bound_to_the_cookie_and_the_connection_never_the_message() {
    let g = gateway_with(web_settings());
    g.set_step(Step::PasswordForm(pb::PasswordForm { invalid: true, ..Default::default() }));
    let m = pb::PasswordLoginRequest {
        request_id: "r1".into(),
        connector_id: "local".into(),
        username: "jane".into(),
        password: "pw".into(),
        client_ip: "10.0.0.1".into(),
        browser_secret: "chosen-by-the-page".into(),
    };
    let a = g.web(grpc_web("oxidex.v1.Flow/PasswordLogin"), &m).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/grpc-web"));
    assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(a.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert!(a.headers.get(header::SET_COOKIE).is_none(), "the endpoint never makes a cookie");
    assert!(matches!(a.step().step, Some(Step::PasswordForm(f)) if f.invalid));
    let Call::PasswordLogin(r) = g.last_call() else { panic!() };
    assert_eq!(
        r,
        pb::PasswordLoginRequest {
            client_ip: "198.51.100.4".into(),
            browser_secret: BROWSER.into(),
            ..m.clone()
        }
    );

    // Every method: the secret is the cookie's; the IP too where core takes one.
    g.set_step(redirect("/dex/approval?req=r1&hmac=h"));
    let a = g
        .web(
            grpc_web("oxidex.v1.Flow/Approve"),
            &pb::ApproveRequest {
                request_id: "r1".into(),
                hmac: "h".into(),
                approve: true,
                browser_secret: "x".into(),
            },
        )
        .await;
    assert!(matches!(a.step().step, Some(Step::Redirect(_))));
    let Call::Approve(r) = g.last_call() else { panic!() };
    assert_eq!((r.browser_secret.as_str(), r.approve, r.hmac.as_str()), (BROWSER, true, "h"));
    let a = g
        .web(
            grpc_web("oxidex.v1.Flow/VerifyUserCode"),
            &pb::VerifyUserCodeRequest {
                user_code: "ABCD-EFGH".into(),
                client_ip: "1.1.1.1".into(),
                browser_secret: "x".into(),
            },
        )
        .await;
    a.step();
    let Call::VerifyUserCode(r) = g.last_call() else { panic!() };
    assert_eq!((r.browser_secret.as_str(), r.client_ip.as_str()), (BROWSER, "198.51.100.4"));
    for method in ["Authorize", "SelectConnector", "Callback", "GetApproval", "DeviceCallback"] {
        // All of these requests carry the secret in a string field the empty message lacks;
        // an empty body decodes as each request type.
        g.web(grpc_web(&format!("oxidex.v1.Flow/{method}")), &pb::GetJwksRequest {}).await.step();
        let secret = match g.last_call() {
            Call::Authorize(r) => r.browser_secret,
            Call::SelectConnector(r) => r.browser_secret,
            Call::Callback(r) => r.browser_secret,
            Call::GetApproval(r) => r.browser_secret,
            Call::DeviceCallback(r) => r.browser_secret,
            other => panic!("{method} reached core as {other:?}"),
        };
        assert_eq!(secret, BROWSER, "{method}");
    }
}

#[tokio::test]
async fn grpc_web_refuses_other_origins_missing_cookies_and_other_services() {
    let g = gateway_with(web_settings());
    g.set_step(redirect("/dex/approval?req=r1&hmac=h"));
    let m = pb::ApproveRequest::default();
    let path = "oxidex.v1.Flow/Approve";
    for origin in ["https://evil.example", "null", "http://id.example", "https://id.example:8443"] {
        let a = g.web(set(grpc_web(path), header::ORIGIN, origin), &m).await;
        assert_eq!(
            (a.status, a.grpc_status),
            (StatusCode::OK, Some(Code::PermissionDenied as i32)),
            "{origin}"
        );
        assert!(a.messages.is_empty());
    }
    // The default port is the same origin.
    let a = g.web(set(grpc_web(path), header::ORIGIN, "https://id.example:443"), &m).await;
    a.step();
    let calls = g.calls().len();

    let no_cookie = Request::post(format!("/dex/grpc-web/{path}"))
        .header(header::CONTENT_TYPE, GRPC_WEB)
        .header(header::ORIGIN, "https://id.example")
        .header(header::COOKIE, "oxidex_browser=too-short");
    let a = g.web(no_cookie, &m).await;
    assert_eq!(a.grpc_status, Some(Code::FailedPrecondition as i32));
    assert!(a.grpc_message.contains("browser%20binding%20cookie%20missing"), "{}", a.grpc_message);

    for other in ["oxidex.v1.Token/Token", "api.Dex/ListClients", "grpc.health.v1.Health/Check"] {
        let a = g.web(grpc_web(other), &m).await;
        assert_eq!(a.grpc_status, Some(Code::Unimplemented as i32), "{other}");
    }
    assert_eq!(g.calls().len(), calls, "a refused call reached core");

    // Not gRPC-web: 415 before anything is decoded (a preflight too, without CORS headers).
    for builder in [
        set(grpc_web(path), header::CONTENT_TYPE, "text/plain"),
        set(grpc_web(path), header::CONTENT_TYPE, "application/grpc"),
        grpc_web(path).method(Method::OPTIONS).header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST"),
    ] {
        let a = g.web(builder, &m).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
    assert_eq!(g.calls().len(), calls);
}

#[tokio::test]
async fn grpc_web_answers_core_failures_without_details() {
    let g = gateway_with(web_settings());
    let m = pb::ApproveRequest::default();
    for (code, expected) in [
        (Code::Internal, Code::Internal),
        (Code::Unknown, Code::Internal),
        (Code::Unavailable, Code::Unavailable),
        (Code::InvalidArgument, Code::InvalidArgument),
    ] {
        *g.core.step.lock().unwrap() = Some(Err(code));
        let a = g.web(grpc_web("oxidex.v1.Flow/Approve"), &m).await;
        assert_eq!(a.grpc_status, Some(expected as i32), "{code:?}");
        let leaks = a.grpc_message.contains("10.1.2.3");
        assert_eq!(leaks, expected == Code::InvalidArgument, "{code:?}: {}", a.grpc_message);
    }
}
