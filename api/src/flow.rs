//! The browser side of OpenID Connect: `/auth`, `/auth/{connector}`, `/auth/{connector}/login`,
//! `/callback`, `/approval` and the device pages. Each route turns the request into one
//! `oxidex.v1.Flow` call and renders the `FlowStep` core answers with; the rules live in core.
//!
//! Every response of these routes carries the page security headers and, for a browser without
//! one, the browser binding cookie (see [`crate::cookies`]). None of them answers CORS.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use oxidex_frontend::messages::Locale;
use oxidex_proto::oxidex::v1 as pb;
use pb::flow_client::FlowClient;
use pb::flow_step::Step;

use crate::assets::Assets;
use crate::cookies::{self, BrowserSecret, ClientIp, CookieSettings};
use crate::error::PageError;
use crate::form::{self, Malformed, first};
use crate::pages::{self, PageEnv};
use crate::{CoreChannel, GatewaySettings};

#[derive(Clone)]
struct FlowState {
    core: CoreChannel,
    /// The issuer path, the assets and the theme.
    pages: PageEnv,
    cookie: CookieSettings,
}

impl FlowState {
    fn client(&self) -> FlowClient<CoreChannel> {
        FlowClient::new(self.core.clone())
    }
}

/// The cookie that keeps the `ui_locales` choice of the last `/auth` for the pages after it.
const LOCALE_COOKIE: &str = "oxidex_locale";

/// The page's language: the `oxidex_locale` cookie (set from `ui_locales` at `/auth`), else
/// `Accept-Language`, else `frontend.defaultLocale`.
struct Lang(Locale);

impl FromRequestParts<FlowState> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &FlowState) -> Result<Self, Self::Rejection> {
        Ok(Lang(page_locale(&parts.headers, state)))
    }
}

fn page_locale(headers: &HeaderMap, state: &FlowState) -> Locale {
    locale_of(headers, &state.pages)
}

fn locale_of(headers: &HeaderMap, pages: &PageEnv) -> Locale {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let chosen = locale_cookie(headers).unwrap_or_default();
    Locale::negotiate(&chosen, accept, pages.default_locale)
}

fn locale_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == LOCALE_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The flow routes, relative to the issuer path.
pub(crate) fn router(core: CoreChannel, settings: &GatewaySettings, assets: Arc<Assets>) -> axum::Router {
    let cookie = CookieSettings::new(&settings.issuer_path, settings.secure_cookies);
    let pages = PageEnv {
        base: settings.issuer_path.clone(),
        assets,
        settings: Arc::new(settings.frontend.clone()),
        default_locale: Locale::from_tag(&settings.frontend.default_locale).unwrap_or_default(),
    };
    axum::Router::new()
        .route("/auth", get(authorize_get).post(authorize_post))
        .route("/auth/{connector}", get(select_connector))
        .route("/auth/{connector}/login", get(password_page).post(password_login))
        .route("/callback", get(callback_get).post(callback_post))
        .route("/callback/{connector}", get(connector_callback_get).post(connector_callback_post))
        .route("/approval", get(approval_page).post(approve))
        .route("/device", get(device_page))
        .route("/device/auth/verify_code", post(verify_user_code))
        .route("/device/callback", get(device_callback))
        .with_state(FlowState { core, pages: pages.clone(), cookie: cookie.clone() })
        .layer(axum::middleware::from_fn_with_state(pages, themed_failures))
        .layer(axum::middleware::from_fn_with_state(cookie, cookies::bind_browser))
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| async move {
                let mut response = next.run(req).await;
                pages::security_headers(response.headers_mut());
                response
            },
        ))
}

/// Replaces the minimal page of a failure outside a flow step (core unreachable, a malformed
/// request) with the themed page in the browser's language, keeping its status and headers
/// (`Retry-After`).
async fn themed_failures(
    State(pages): State<PageEnv>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let locale = locale_of(req.headers(), &pages);
    let response = next.run(req).await;
    let Some(failure) = response.extensions().get::<pages::Failure>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<pages::Failure>();
    parts.headers.remove(header::CONTENT_LENGTH);
    let themed = pages.failure(locale, parts.status, &failure);
    let (themed_parts, body) = themed.into_parts();
    for (name, value) in &themed_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

/// Renders the step core answered with.
fn render(pages: &PageEnv, locale: Locale, step: pb::FlowStep) -> Response {
    let Some(inner) = &step.step else {
        tracing::error!("core answered a flow step without a step");
        return internal_error();
    };
    match inner {
        Step::Redirect(r) => match HeaderValue::try_from(r.url.as_str()) {
            Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
            Err(_) => {
                tracing::error!("core answered a redirect URL that is not a valid header value");
                internal_error()
            }
        },
        Step::Error(e) => pages.error_page(locale, &step, e),
        Step::Chooser(c) => pages.chooser(locale, &step, c),
        Step::PasswordForm(f) => pages.password_form(locale, &step, f),
        Step::Approval(a) => pages.approval(locale, &step, a),
        Step::Oob(o) => pages.oob(locale, &step, o),
        Step::DeviceSuccess(d) => pages.device_success(locale, &step, d),
        Step::DeviceEntry(d) => pages.device_entry(locale, &step, d),
    }
}

fn internal_error() -> Response {
    pages::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "Please try again later.")
}

/// The query string's parameters.
fn query(uri: &Uri) -> Result<Vec<(String, String)>, Malformed> {
    form::parse_pairs(uri.query().unwrap_or(""))
}

/// The form body's parameters followed by the query string's (so the body wins for `first`).
fn body_and_query(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    let mut pairs = form::parse_body(headers, body)?;
    pairs.extend(query(uri)?);
    Ok(pairs)
}

/// The parameters as a map; the first occurrence of a name wins.
fn to_map(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    map
}

fn authorize_request(p: &[(String, String)], browser: BrowserSecret) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        client_id: first(p, "client_id").to_owned(),
        redirect_uri: first(p, "redirect_uri").to_owned(),
        response_type: first(p, "response_type").to_owned(),
        scope: first(p, "scope").to_owned(),
        state: first(p, "state").to_owned(),
        nonce: first(p, "nonce").to_owned(),
        code_challenge: first(p, "code_challenge").to_owned(),
        code_challenge_method: first(p, "code_challenge_method").to_owned(),
        connector_id: first(p, "connector_id").to_owned(),
        prompt: first(p, "prompt").to_owned(),
        max_age: first(p, "max_age").to_owned(),
        id_token_hint: first(p, "id_token_hint").to_owned(),
        login_hint: first(p, "login_hint").to_owned(),
        ui_locales: first(p, "ui_locales").to_owned(),
        approval_prompt: first(p, "approval_prompt").to_owned(),
        request: first(p, "request").to_owned(),
        request_uri: first(p, "request_uri").to_owned(),
        response_mode: first(p, "response_mode").to_owned(),
        browser_secret: browser.0,
    }
}

/// `/auth`: remembers a supported `ui_locales` choice in a session cookie for the later pages
/// of the flow (and forgets an earlier one when the request has none).
async fn authorize(
    state: FlowState,
    req: pb::AuthorizeRequest,
    headers: &HeaderMap,
) -> Result<Response, PageError> {
    let chosen = req.ui_locales.split_whitespace().find_map(Locale::from_tag);
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let locale = Locale::negotiate(chosen.map_or("", Locale::tag), accept, state.pages.default_locale);
    let step = state.client().authorize(req).await?.into_inner();
    let mut response = render(&state.pages, locale, step);
    let cookie = match chosen {
        Some(l) => Some(state.cookie.cookie(LOCALE_COOKIE, l.tag(), false)),
        None if locale_cookie(headers).is_some() => Some(state.cookie.cookie(LOCALE_COOKIE, "", true)),
        None => None,
    };
    if let Some(Ok(v)) = cookie.map(HeaderValue::try_from) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[tracing::instrument(skip_all)]
async fn authorize_get(
    State(state): State<FlowState>,
    browser: BrowserSecret,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    authorize(state, authorize_request(&p, browser), &headers).await
}

#[tracing::instrument(skip_all)]
async fn authorize_post(
    State(state): State<FlowState>,
    browser: BrowserSecret,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let p = body_and_query(&uri, &headers, &body)?;
    authorize(state, authorize_request(&p, browser), &headers).await
}

/// `/auth/{connector}?req=`: starts the login with one connector. A request without `req` but
/// with `client_id` is a new authorization request naming its connector in the path.
#[tracing::instrument(skip_all, fields(connector_id = %connector))]
async fn select_connector(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    Path(connector): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    let request_id = first(&p, "req");
    if request_id.is_empty() && !first(&p, "client_id").is_empty() {
        let mut req = authorize_request(&p, browser);
        req.connector_id = connector;
        return authorize(state, req, &headers).await;
    }
    let req = pb::SelectConnectorRequest {
        request_id: request_id.to_owned(),
        connector_id: connector,
        browser_secret: browser.0,
    };
    let step = state.client().select_connector(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}

/// The request id of the password routes: `req`, or Dex's `state`.
fn request_id(p: &[(String, String)]) -> &str {
    match first(p, "req") {
        "" => first(p, "state"),
        id => id,
    }
}

#[tracing::instrument(skip_all, fields(connector_id = %connector))]
async fn password_page(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    Path(connector): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    let req = pb::SelectConnectorRequest {
        request_id: request_id(&p).to_owned(),
        connector_id: connector,
        browser_secret: browser.0,
    };
    let step = state.client().select_connector(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}

#[tracing::instrument(skip_all, fields(connector_id = %connector))]
async fn password_login(
    State(state): State<FlowState>,
    browser: BrowserSecret,
    ClientIp(client_ip): ClientIp,
    Path(connector): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let lang = page_locale(&headers, &state);
    let p = body_and_query(&uri, &headers, &body)?;
    let req = pb::PasswordLoginRequest {
        request_id: request_id(&p).to_owned(),
        connector_id: connector,
        username: first(&p, "login").to_owned(),
        password: first(&p, "password").to_owned(),
        client_ip,
        browser_secret: browser.0,
    };
    let step = state.client().password_login(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}

async fn callback(
    state: FlowState,
    lang: Locale,
    connector_id: String,
    params: Vec<(String, String)>,
    browser: BrowserSecret,
) -> Result<Response, PageError> {
    let req = pb::CallbackRequest { connector_id, params: to_map(params), browser_secret: browser.0 };
    let step = state.client().callback(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}

#[tracing::instrument(skip_all)]
async fn callback_get(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    uri: Uri,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    callback(state, lang, String::new(), p, browser).await
}

#[tracing::instrument(skip_all)]
async fn callback_post(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let p = body_and_query(&uri, &headers, &body)?;
    callback(state, lang, String::new(), p, browser).await
}

#[tracing::instrument(skip_all, fields(connector_id = %connector))]
async fn connector_callback_get(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    Path(connector): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    callback(state, lang, connector, p, browser).await
}

#[tracing::instrument(skip_all, fields(connector_id = %connector))]
async fn connector_callback_post(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    Path(connector): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let p = body_and_query(&uri, &headers, &body)?;
    callback(state, lang, connector, p, browser).await
}

#[tracing::instrument(skip_all)]
async fn approval_page(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    uri: Uri,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    let req = pb::ApprovalRequest {
        request_id: first(&p, "req").to_owned(),
        hmac: first(&p, "hmac").to_owned(),
        browser_secret: browser.0,
    };
    let step = state.client().get_approval(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}

#[tracing::instrument(skip_all)]
async fn approve(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let p = form::parse_body(&headers, &body)?;
    let req = pb::ApproveRequest {
        request_id: first(&p, "req").to_owned(),
        hmac: first(&p, "hmac").to_owned(),
        approve: first(&p, "approval") == "approve",
        browser_secret: browser.0,
    };
    let step = state.client().approve(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}

/// `/device`: the user-code form, prefilled from `?user_code=`. Only binds the browser.
async fn device_page(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    _browser: BrowserSecret,
    uri: Uri,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    let entry = pb::DeviceEntry {
        user_code: first(&p, "user_code").to_owned(),
        invalid: false,
        retry_after_seconds: 0,
    };
    let step = pb::FlowStep { step: Some(Step::DeviceEntry(entry.clone())) };
    Ok(state.pages.device_entry(lang, &step, &entry))
}

#[tracing::instrument(skip_all)]
async fn verify_user_code(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let p = form::parse_body(&headers, &body)?;
    let req = pb::VerifyUserCodeRequest {
        user_code: first(&p, "user_code").to_owned(),
        client_ip,
        browser_secret: browser.0,
    };
    let step = state.client().verify_user_code(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}

#[tracing::instrument(skip_all)]
async fn device_callback(
    State(state): State<FlowState>,
    Lang(lang): Lang,
    browser: BrowserSecret,
    uri: Uri,
) -> Result<Response, PageError> {
    let p = query(&uri)?;
    let req = pb::DeviceCallbackRequest {
        code: first(&p, "code").to_owned(),
        state: first(&p, "state").to_owned(),
        browser_secret: browser.0,
    };
    let step = state.client().device_callback(req).await?.into_inner();
    Ok(render(&state.pages, lang, step))
}
