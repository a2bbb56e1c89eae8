//! The login pages. Each page is an HTML shell that works without JavaScript (the forms post to
//! the flow routes) and carries the step for the browser app:
//!
//! - `<html lang>` from the negotiated locale, `data-theme` from `frontend.theme`;
//! - the base and theme stylesheets, the favicon, and (when the UI is built in) the app's JS
//!   module, all same-origin under `{base}/static/` with hashed names;
//! - the no-JS rendering (every string from `oxidex_frontend::messages`) in `<main id="app">`;
//! - the `FlowStep` and the page context as JSON in `<script type="application/json" id="step">`,
//!   which the app reads and renders (see `oxidex_frontend::page`).
//!
//! Every value is escaped; pages are `no-store` and carry a strict Content-Security-Policy
//! ([`csp`]) plus the headers of [`security_headers`].

use std::sync::Arc;

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use oxidex_frontend::messages::{self, Locale, Msg};
use oxidex_frontend::page::{Embedded, PageContext, origin_of, script_safe_json};
use oxidex_proto::oxidex::v1 as pb;

use crate::assets::{Assets, FrontendSettings};
use crate::form::encode;

/// The CSP of responses that are not login pages (redirects, minimal error pages): nothing may
/// load, nothing may frame them.
const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What every page needs: the issuer path, the assets and the operator's theme.
#[derive(Clone)]
pub(crate) struct PageEnv {
    pub(crate) base: String,
    pub(crate) assets: Arc<Assets>,
    pub(crate) settings: Arc<FrontendSettings>,
    pub(crate) default_locale: Locale,
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The headers every response of a flow route carries (HTML pages and redirects alike); a
/// page's own Content-Security-Policy is kept.
pub(crate) fn security_headers(h: &mut HeaderMap) {
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(STRICT_CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// A CSP source for a redirect target: the origin of an http(s) URI, or the scheme of a
/// custom-scheme URI (`com.example.app:`).
fn redirect_source(origin: &str) -> Option<String> {
    if origin.is_empty() {
        return None;
    }
    if let Some(o) = origin_of(origin) {
        return Some(o);
    }
    let scheme = origin.split(':').next()?;
    let dangerous = ["javascript", "data", "blob", "filesystem", "vbscript"];
    let valid = scheme.len() < origin.len()
        && !dangerous.iter().any(|d| scheme.eq_ignore_ascii_case(d))
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| format!("{}:", scheme.to_ascii_lowercase()))
}

/// A login page's Content-Security-Policy: scripts and styles only from this origin (the
/// app's WASM needs `'wasm-unsafe-eval'`), images also from the configured logo's origin and
/// the client's, forms only to this origin and to where the form's POST is redirected (the
/// client's redirect URI: browsers apply `form-action` to the redirects after a POST too).
pub(crate) fn csp(img_urls: &[&str], form_targets: &[&str]) -> String {
    let mut img = vec!["'self'".to_owned()];
    img.extend(img_urls.iter().filter_map(|u| origin_of(u)));
    img.dedup();
    let mut form = vec!["'self'".to_owned()];
    form.extend(form_targets.iter().filter_map(|u| redirect_source(u)));
    form.dedup();
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src {}; \
         connect-src 'self'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
        img.join(" "),
        form.join(" ")
    )
}

/// The parts of one page.
struct Page<'a> {
    status: StatusCode,
    title: String,
    body: String,
    /// The client's logo, allowed by `img-src`.
    client_logo: Option<&'a str>,
    /// Where a form's POST may be redirected besides this origin.
    redirect_origin: Option<&'a str>,
}

impl PageEnv {
    fn context(&self, locale: Locale) -> PageContext {
        let s = &self.settings;
        PageContext {
            base: self.base.clone(),
            locale: locale.tag().to_owned(),
            issuer: s.issuer.clone(),
            logo_url: s.logo_url.clone().unwrap_or_default(),
            extra: s.extra.clone(),
        }
    }

    fn static_url(&self, name: &str) -> String {
        format!("{}/static/{}", self.base, encode(name))
    }

    /// The complete HTML shell of a page.
    fn render(&self, locale: Locale, step: &pb::FlowStep, page: Page<'_>) -> Response {
        let s = &self.settings;
        let theme = if s.theme.is_empty() { "light" } else { &s.theme };
        let embedded = Embedded { ctx: self.context(locale), step };
        let json = serde_json::to_string(&embedded).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not serialize a flow step");
            "{}".to_owned()
        });
        let mut head = String::new();
        if let Some(icon) = &self.assets.favicon {
            head.push_str(&format!("<link rel=\"icon\" href=\"{}\">\n", escape(&self.static_url(icon))));
        }
        head.push_str(&format!(
            "<link rel=\"stylesheet\" href=\"{}\">\n<link rel=\"stylesheet\" href=\"{}\">\n",
            escape(&self.static_url(&self.assets.app_css)),
            escape(&self.static_url(&self.assets.theme_css)),
        ));
        if let (Some(js), Some(wasm)) = (self.assets.entry_js, self.assets.wasm) {
            head.push_str(&format!(
                "<link rel=\"preload\" href=\"{}\" as=\"fetch\" type=\"application/wasm\" crossorigin>\n\
                 <script type=\"module\" src=\"{}\"></script>\n",
                escape(&self.static_url(wasm)),
                escape(&self.static_url(js)),
            ));
        }
        let logo = match &s.logo_url {
            Some(url) => format!("<img src=\"{}\" alt=\"\">", escape(url)),
            None => String::new(),
        };
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\" data-theme=\"{theme}\"><head><meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title} – {issuer}</title>\n{head}</head>\n\
<body>\n<header class=\"ox-brand\">{logo}<span>{issuer}</span></header>\n\
<main id=\"app\">\n<h1>{title}</h1>\n{body}\n</main>\n\
<script type=\"application/json\" id=\"step\">{json}</script>\n</body></html>\n",
            lang = locale.tag(),
            theme = escape(theme),
            title = escape(&page.title),
            issuer = escape(&s.issuer),
            body = page.body,
            json = script_safe_json(&json),
        );
        let mut imgs: Vec<&str> = Vec::new();
        if let Some(l) = &s.logo_url {
            imgs.push(l);
        }
        imgs.extend(page.client_logo.filter(|l| !l.is_empty()));
        let forms: Vec<&str> = page.redirect_origin.into_iter().collect();
        let mut response = (page.status, Html(html)).into_response();
        if let Ok(v) = HeaderValue::try_from(csp(&imgs, &forms)) {
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        security_headers(response.headers_mut());
        response
    }

    /// An error page from core's `ErrorPage`, in the page's language when its code is known.
    pub(crate) fn error_page(&self, locale: Locale, step: &pb::FlowStep, e: &pb::ErrorPage) -> Response {
        let status = u16::try_from(e.http_status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::BAD_REQUEST);
        let (title, message) = match messages::error_text(&e.code) {
            Some((t, m)) => (
                t.text(locale).to_owned(),
                m.map_or_else(|| e.message.clone(), |m| m.text(locale).to_owned()),
            ),
            None if e.title.is_empty() => (Msg::ErrorTitle.text(locale).to_owned(), e.message.clone()),
            None => (e.title.clone(), e.message.clone()),
        };
        let body = format!("<p class=\"ox-alert\" role=\"alert\">{}</p>", escape(&message));
        self.render(locale, step, Page { status, title, body, client_logo: None, redirect_origin: None })
    }

    /// The themed, translated page of a failure outside a flow step ([`error`]): an error step
    /// with a catalog code by status (503 `unavailable`, other 5xx `internal`, 4xx `bad_request`
    /// with the detail), so that the login UI renders it like every other error.
    pub(crate) fn failure(&self, locale: Locale, status: StatusCode, failure: &Failure) -> Response {
        let code = match status {
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        let e = pb::ErrorPage {
            code: code.into(),
            message: if status.is_server_error() { String::new() } else { failure.message.clone() },
            http_status: i32::from(status.as_u16()),
            ..Default::default()
        };
        let step = pb::FlowStep { step: Some(pb::flow_step::Step::Error(e.clone())) };
        self.error_page(locale, &step, &e)
    }

    /// The connector chooser: one link per connector.
    pub(crate) fn chooser(&self, locale: Locale, step: &pb::FlowStep, c: &pb::ConnectorChooser) -> Response {
        let mut body = intro(locale, c.client.as_ref());
        body.push_str("<ul class=\"ox-connectors\">\n");
        for conn in &c.connectors {
            let name = if conn.name.is_empty() { &conn.id } else { &conn.name };
            let href = format!("{}/auth/{}?req={}", self.base, encode(&conn.id), encode(&c.request_id));
            body.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                escape(&href),
                escape(&Msg::LogInWith.fill(locale, &[("name", name)]))
            ));
        }
        body.push_str("</ul>");
        let page = Page {
            status: StatusCode::OK,
            title: Msg::LogIn.text(locale).to_owned(),
            body,
            client_logo: c.client.as_ref().map(|c| c.logo_url.as_str()),
            redirect_origin: None,
        };
        self.render(locale, step, page)
    }

    /// The username and password form of a password connector.
    pub(crate) fn password_form(
        &self,
        locale: Locale,
        step: &pb::FlowStep,
        f: &pb::PasswordForm,
    ) -> Response {
        let prompt = messages::username_prompt(&f.username_prompt, locale);
        let action = format!("{}/auth/{}/login", self.base, encode(&f.connector_id));
        let mut body = intro(locale, f.client.as_ref());
        body.push_str(&alert(locale, f.invalid, f.retry_after_seconds, Msg::InvalidCredentials));
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\">\n{}\n\
<label for=\"login\">{}</label><input id=\"login\" name=\"login\" type=\"text\" value=\"{}\" \
autocomplete=\"username\" required autofocus>\n\
<label for=\"password\">{}</label><input id=\"password\" name=\"password\" type=\"password\" \
autocomplete=\"current-password\" required>\n<button type=\"submit\" class=\"ox-full\">{}</button>\n</form>",
            escape(&action),
            hidden("req", &f.request_id),
            escape(&prompt),
            escape(&f.username),
            escape(Msg::Password.text(locale)),
            escape(Msg::LogIn.text(locale)),
        ));
        let status = if f.invalid { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
        let page = Page {
            status,
            title: Msg::LogIn.text(locale).to_owned(),
            body,
            client_logo: f.client.as_ref().map(|c| c.logo_url.as_str()),
            redirect_origin: Some(&f.redirect_origin),
        };
        throttled(self.render(locale, step, page), f.retry_after_seconds)
    }

    /// The consent page.
    pub(crate) fn approval(&self, locale: Locale, step: &pb::FlowStep, a: &pb::Approval) -> Response {
        let client = client_name(a.client.as_ref());
        let mut body = String::new();
        let who = match (a.username.is_empty(), a.email.is_empty()) {
            (false, false) => format!("{} ({})", a.username, a.email),
            (false, true) => a.username.clone(),
            (true, false) => a.email.clone(),
            (true, true) => String::new(),
        };
        if !who.is_empty() {
            body.push_str(&format!(
                "<p class=\"ox-muted\">{}</p>\n",
                escape(&Msg::LoggedInAs.fill(locale, &[("user", &who)]))
            ));
        }
        body.push_str(&format!(
            "<p>{}</p>\n<ul class=\"ox-scopes\">\n",
            escape(&Msg::WouldLikeTo.fill(locale, &[("client", &client)]))
        ));
        for s in &a.scopes {
            let text = messages::scope_text(&s.scope, locale).unwrap_or_else(|| {
                if s.description.is_empty() { s.scope.clone() } else { s.description.clone() }
            });
            body.push_str(&format!("<li>{}</li>\n", escape(&text)));
        }
        body.push_str("</ul>\n");
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\">\n{}{}\n<div class=\"ox-actions\">\
<button type=\"submit\" name=\"approval\" value=\"approve\">{}</button>\n\
<button type=\"submit\" name=\"approval\" value=\"rejected\" class=\"ox-secondary\">{}</button></div>\n</form>",
            escape(&format!("{}/approval", self.base)),
            hidden("req", &a.request_id),
            hidden("hmac", &a.hmac),
            escape(Msg::Approve.text(locale)),
            escape(Msg::Deny.text(locale)),
        ));
        let page = Page {
            status: StatusCode::OK,
            title: Msg::GrantAccessTitle.text(locale).to_owned(),
            body,
            client_logo: a.client.as_ref().map(|c| c.logo_url.as_str()),
            redirect_origin: Some(&a.redirect_origin),
        };
        self.render(locale, step, page)
    }

    /// The code for an out-of-band client.
    pub(crate) fn oob(&self, locale: Locale, step: &pb::FlowStep, o: &pb::OobCode) -> Response {
        let body = format!(
            "<p>{}</p>\n<label for=\"code\">{}</label><input id=\"code\" class=\"ox-code\" type=\"text\" readonly value=\"{}\">",
            escape(Msg::OobIntro.text(locale)),
            escape(Msg::OobLabel.text(locale)),
            escape(&o.code)
        );
        let page = Page {
            status: StatusCode::OK,
            title: Msg::LoginSuccessful.text(locale).to_owned(),
            body,
            client_logo: None,
            redirect_origin: None,
        };
        self.render(locale, step, page)
    }

    /// The end of the device flow.
    pub(crate) fn device_success(
        &self,
        locale: Locale,
        step: &pb::FlowStep,
        d: &pb::DeviceSuccess,
    ) -> Response {
        let client = client_name(d.client.as_ref());
        let text = if client.is_empty() {
            Msg::DeviceDone.text(locale).to_owned()
        } else {
            Msg::DeviceDoneClient.fill(locale, &[("client", &client)])
        };
        let page = Page {
            status: StatusCode::OK,
            title: Msg::LoginSuccessful.text(locale).to_owned(),
            body: format!("<p role=\"status\">{}</p>", escape(&text)),
            client_logo: None,
            redirect_origin: None,
        };
        self.render(locale, step, page)
    }

    /// The user-code entry page of the device flow.
    pub(crate) fn device_entry(&self, locale: Locale, step: &pb::FlowStep, d: &pb::DeviceEntry) -> Response {
        let mut body = alert(locale, d.invalid, d.retry_after_seconds, Msg::DeviceInvalid);
        body.push_str(&format!(
            "<p>{}</p>\n<form method=\"post\" action=\"{}\">\n\
<label for=\"user_code\">{}</label><input id=\"user_code\" name=\"user_code\" class=\"ox-code\" type=\"text\" value=\"{}\" \
autocomplete=\"off\" autocapitalize=\"characters\" spellcheck=\"false\" required autofocus>\n\
<button type=\"submit\" class=\"ox-full\">{}</button>\n</form>",
            escape(Msg::DeviceIntro.text(locale)),
            escape(&format!("{}/device/auth/verify_code", self.base)),
            escape(Msg::DeviceLabel.text(locale)),
            escape(&d.user_code),
            escape(Msg::Continue.text(locale)),
        ));
        let status = if d.invalid { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        let page = Page {
            status,
            title: Msg::DeviceTitle.text(locale).to_owned(),
            body,
            client_logo: None,
            redirect_origin: None,
        };
        throttled(self.render(locale, step, page), d.retry_after_seconds)
    }
}

/// What a failure outside a flow step was, kept on the response of [`error`] so that the flow
/// routes can render it as a themed, translated error page (see [`PageEnv::failure`]).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The detail that may be shown (never an internal one).
    pub(crate) message: String,
}

/// A minimal page for failures outside a flow step (core unreachable, a malformed form): no
/// assets, English, escaped. The flow routes replace it with [`PageEnv::failure`]; other routes
/// keep it.
pub(crate) fn error(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title></head>\n\
<body><main>\n<h1>{t}</h1>\n<p role=\"alert\">{m}</p>\n</main></body></html>\n",
        t = escape(title),
        m = escape(message),
    );
    let mut response = (status, Html(html)).into_response();
    security_headers(response.headers_mut());
    response.extensions_mut().insert(Failure { message: message.to_owned() });
    response
}

/// "Log in to continue to {client}." when the client is known.
fn intro(locale: Locale, client: Option<&pb::ClientInfo>) -> String {
    let name = client_name(client);
    if name.is_empty() {
        return format!("<p class=\"ox-muted\">{}</p>\n", escape(Msg::ChooseMethod.text(locale)));
    }
    format!(
        "<p class=\"ox-muted\">{}</p>\n",
        escape(&Msg::LogInToContinue.fill(locale, &[("client", &name)]))
    )
}

/// The alert of a failed attempt: the throttling wait, or `invalid`'s message. The element is
/// always there (empty when there is nothing to say) so that screen readers announce changes.
fn alert(locale: Locale, invalid: bool, retry_after_seconds: i64, invalid_msg: Msg) -> String {
    let text = if retry_after_seconds > 0 {
        Msg::Throttled.fill(locale, &[("seconds", &retry_after_seconds.to_string())])
    } else if invalid {
        invalid_msg.text(locale).to_owned()
    } else {
        return String::new();
    };
    format!("<p class=\"ox-alert\" role=\"alert\">{}</p>\n", escape(&text))
}

/// Adds `Retry-After` and picks 429 when the user must wait.
fn throttled(mut response: Response, retry_after_seconds: i64) -> Response {
    if retry_after_seconds > 0 {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::try_from(retry_after_seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

fn client_name(client: Option<&pb::ClientInfo>) -> String {
    match client {
        Some(c) if !c.name.is_empty() => c.name.clone(),
        Some(c) => c.id.clone(),
        None => String::new(),
    }
}

fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn csp_lists_only_origins() {
        let policy = csp(
            &["https://cdn.example.com/logo.png", "javascript:alert(1)", "https://x.test/a b\"c"],
            &["https://app.example.com", "com.example.app:/cb", "'unsafe-inline'", "", "javascript:x"],
        );
        assert!(policy.contains("img-src 'self' https://cdn.example.com https://x.test;"), "{policy}");
        assert!(policy.contains("form-action 'self' https://app.example.com com.example.app:;"), "{policy}");
        assert!(policy.contains("script-src 'self' 'wasm-unsafe-eval';"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }
}
